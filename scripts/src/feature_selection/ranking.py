"""The ranking: one score per molecule, computed by Spark.

Without clinical data, molecules are ranked by sample variance across samples (a common
unsupervised filter: near-constant molecules carry no information). With clinical data,
by the absolute Pearson correlation between the molecule and a numeric clinical column
(survival `time` by default), over the samples present in both datasets.
"""

from typing import List, Optional, Tuple

from pyspark.sql import DataFrame, functions as F

from .datasets import DatasetError

VARIANCE = "variance"
CORRELATION = "abs_pearson"


def _quoted(name: str) -> str:
    return "`" + name.replace("`", "``") + "`"


def long_format(molecules: DataFrame) -> DataFrame:
    """(molecule, sample, value) rows from a molecules x samples table."""
    id_column, *samples = molecules.columns
    cells = F.array(
        *[
            F.struct(
                F.lit(s).alias("sample"),
                F.col(_quoted(s)).cast("double").alias("value"),
            )
            for s in samples
        ]
    )
    return (
        molecules.select(F.col(_quoted(id_column)).alias("molecule"), F.explode(cells).alias("cell"))
        .select("molecule", "cell.sample", "cell.value")
        .where(F.col("value").isNotNull() & ~F.isnan("value"))
    )


def rank(
    molecules: DataFrame,
    clinical: Optional[DataFrame] = None,
    clinical_column: str = "time",
) -> Tuple[str, int, List[Tuple[str, float, int]]]:
    """Returns (criterion, samples used, [(molecule, score, samples), best first])."""
    cells = long_format(molecules)
    if clinical is None:
        criterion = VARIANCE
        n_samples = len(molecules.columns) - 1
        scores = cells.groupBy("molecule").agg(
            F.var_samp("value").alias("score"), F.count("value").alias("n")
        )
    else:
        if clinical_column not in clinical.columns:
            raise DatasetError(
                f"clinical dataset has no column {clinical_column!r} "
                f"(columns: {', '.join(clinical.columns)})"
            )
        sample_column = clinical.columns[0]
        target = clinical.select(
            F.col(_quoted(sample_column)).alias("sample"),
            F.col(_quoted(clinical_column)).cast("double").alias("target"),
        ).where(F.col("target").isNotNull())
        joined = cells.join(target, on="sample", how="inner")
        n_samples = joined.select("sample").distinct().count()
        if n_samples < 3:
            raise DatasetError(
                f"only {n_samples} samples are in both datasets; at least 3 are needed"
            )
        criterion = CORRELATION
        scores = joined.groupBy("molecule").agg(
            F.abs(F.corr("value", "target")).alias("score"), F.count("value").alias("n")
        )

    rows = (
        scores.where(F.col("score").isNotNull() & ~F.isnan("score"))
        .orderBy(F.col("score").desc(), F.col("molecule").asc())
        .collect()
    )
    return criterion, n_samples, [(r["molecule"], float(r["score"]), int(r["n"])) for r in rows]
