"""Static checks of the EMR job image's Dockerfile (there is no Docker engine to build it
in the tests): it installs exactly the pinned job environment on EMR's image of the
release, with a Python the pinned stack and the release's PySpark both support."""

import os
import re
import unittest

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
DOCKERFILE = os.path.join(REPO, "templates", "dockerfiles", "emr-job", "Dockerfile")
REQUIREMENTS = os.path.join(REPO, "scripts", "requirements.txt")
CI_REQUIREMENTS = os.path.join(REPO, ".ci", "requirements.txt")

# PySpark of the EMR release -> the newest Python it supports (3.11 came with Spark 3.4).
SPARK_OF_RELEASE = {"emr-6.9.0": "3.3"}
MAX_PYTHON_OF_SPARK = {"3.3": (3, 10)}


def instructions(path):
    """(INSTRUCTION, arguments) with continuation lines joined and comments dropped."""
    with open(path) as f:
        text = f.read()
    lines, current = [], ""
    for raw in text.splitlines():
        line = raw.strip()
        if not current and (not line or line.startswith("#")):
            continue
        if line.endswith("\\"):
            current += line[:-1] + " "
            continue
        current += line
        keyword, _, rest = current.partition(" ")
        lines.append((keyword.upper(), rest.strip()))
        current = ""
    return lines


class JobImageTests(unittest.TestCase):
    def setUp(self):
        self.steps = instructions(DOCKERFILE)

    def args(self):
        return dict(re.match(r"(\w+)=(\S+)", a).groups() for k, a in self.steps if k == "ARG" and "=" in a)

    def test_every_stage_is_emrs_image_of_the_release_arg(self):
        froms = [a for k, a in self.steps if k == "FROM"]
        self.assertEqual(len(froms), 2)
        for f in froms:
            self.assertTrue(f.startswith("${EMR_BASE}/${EMR_RELEASE}:latest"), f)
        args = self.args()
        self.assertEqual(args["EMR_BASE"], "public.ecr.aws/emr-on-eks/spark")
        self.assertIn(args["EMR_RELEASE"], SPARK_OF_RELEASE)

    def test_python_is_one_the_release_pyspark_and_the_pinned_stack_support(self):
        version = tuple(int(p) for p in self.args()["PYTHON_VERSION"].split(".")[:2])
        spark = SPARK_OF_RELEASE[self.args()["EMR_RELEASE"]]
        self.assertLessEqual(version, MAX_PYTHON_OF_SPARK[spark])
        self.assertGreaterEqual(version, (3, 9))  # pandas 2.2 and scipy 1.13 need 3.9+

    def test_installs_exactly_the_pinned_file_and_nothing_else(self):
        copies = [a for k, a in self.steps if k == "COPY" and "requirements" in a]
        self.assertEqual(copies, ["scripts/requirements.txt /tmp/requirements.txt"])
        installs = [a for k, a in self.steps if k == "RUN" and "pip install" in a]
        self.assertEqual(len(installs), 1, installs)
        pip_part = installs[0].split("pip install", 1)[1]
        words = [w for w in pip_part.split() if not w.startswith("-")]
        self.assertEqual(words, ["/tmp/requirements.txt"], "pip installs only the pinned file")
        self.assertIn("--requirement /tmp/requirements.txt", installs[0])

    def test_the_pinned_file_pins_every_package_and_ci_includes_it(self):
        with open(REQUIREMENTS) as f:
            pins = [l.strip() for l in f if l.strip() and not l.startswith("#")]
        for pin in pins:
            self.assertRegex(pin, r"^[A-Za-z0-9_.-]+==[0-9][0-9A-Za-z.]*$")
        names = {p.split("==")[0] for p in pins}
        self.assertTrue({"scikit-survival", "scikit-learn", "lifelines", "pandas", "scipy", "numpy"} <= names)
        with open(CI_REQUIREMENTS) as f:
            self.assertIn("-r ../scripts/requirements.txt", f.read().splitlines())

    def test_spark_uses_the_jobs_python_and_the_image_ends_as_hadoop(self):
        env = " ".join(a for k, a in self.steps if k == "ENV")
        self.assertIn("PYSPARK_PYTHON=/opt/feature-selection/bin/python", env)
        self.assertIn("PYSPARK_DRIVER_PYTHON=/opt/feature-selection/bin/python", env)
        users = [a for k, a in self.steps if k == "USER"]
        self.assertEqual(users[-1], "hadoop:hadoop")
        last_from = max(i for i, (k, _) in enumerate(self.steps) if k == "FROM")
        self.assertEqual(self.steps[-1], ("USER", "hadoop:hadoop"))
        copied = [a for k, a in self.steps[last_from:] if k == "COPY"]
        self.assertIn("--from=python-build /opt/feature-selection /opt/feature-selection", copied)


if __name__ == "__main__":
    unittest.main()
