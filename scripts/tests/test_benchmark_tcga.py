"""The TCGA benchmark's arithmetic on worked examples: the event-log reader, the two
cuttings' makespans and the busy fraction."""

import json
import os
import sys
import tempfile
import unittest

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import benchmark_tcga as b  # noqa: E402


def task_end(stage, index, executor, launch, finish, reason="Success"):
    return {"Event": "SparkListenerTaskEnd", "Stage ID": stage, "Task End Reason": {"Reason": reason},
            "Task Info": {"Index": index, "Executor ID": executor, "Launch Time": launch,
                          "Finish Time": finish}}


def stage_done(stage, tasks, submitted, completed):
    return {"Event": "SparkListenerStageCompleted",
            "Stage Info": {"Stage ID": stage, "Number of Tasks": tasks,
                           "Submission Time": submitted, "Completion Time": completed}}


class Cuttings(unittest.TestCase):
    def test_greedy_list_scheduling_gives_each_unit_to_the_core_free_first(self):
        # 2 cores: 3 on one; 1, 1, 1 on the other -> 3 s, all 6 s of work in 2 x 3 s.
        self.assertEqual(b.greedy_makespan([3, 1, 1, 1], 2), 3)
        # Three 2 s units on 2 cores: the third waits -> 4 s.
        self.assertEqual(b.greedy_makespan([2, 2, 2], 2), 4)
        # More cores than units: the longest unit.
        self.assertEqual(b.greedy_makespan([1, 5, 2], 16), 5)

    def test_the_old_cutting_runs_contiguous_slices_of_whole_evaluations(self):
        # Five one-unit evaluations on 2 cores: slices [0, 2) and [2, 5) -> 4 + 1 = 5 s.
        self.assertEqual(b.contiguous_slices(5, 2), [range(0, 2), range(2, 5)])
        self.assertEqual(b.old_makespan([4, 1, 1, 1, 1], 1, 2), 5)
        # On 16 cores each evaluation has its own slice: the longest, 4 s.
        self.assertEqual(b.old_makespan([4, 1, 1, 1, 1], 1, 16), 4)
        # Two folds: evaluations 1+1, 2+2, 1+1 = 2, 4, 2 s; slices [2] and [4, 2] -> 6 s.
        self.assertEqual(b.old_makespan([1, 1, 2, 2, 1, 1], 2, 2), 6)

    def test_a_worked_example_of_both_cuttings_and_their_efficiency(self):
        # The same batch as units on 2 cores: 1 | 1, then 2 | 2 from t=1, then 1 | 1 -> 4 s.
        batch = [1, 1, 2, 2, 1, 1]
        self.assertEqual(b.greedy_makespan(batch, 2), 4)
        s = b.simulate([batch, [3, 3]], folds=2, cores=2)
        # Second batch: one evaluation of 6 s (old), two units side by side, 3 s (new).
        self.assertEqual((s.old_makespan, s.new_makespan, s.work), (6 + 6, 4 + 3, 14))
        self.assertAlmostEqual(s.efficiency(s.old_makespan), 14 / 24)
        self.assertAlmostEqual(s.efficiency(s.new_makespan), 1.0)

    def test_fifteen_stars_of_ten_equal_folds_fill_64_cores_at_most_as_whole_rounds_allow(self):
        # 140 equal units on 64 cores: three rounds, 140 / 192 of the cores' time.
        units = [1.0] * 140
        s = b.simulate([units], folds=10, cores=64)
        self.assertEqual(s.new_makespan, 3)
        self.assertAlmostEqual(s.efficiency(s.new_makespan), 140 / 192)
        # The old cutting: 14 evaluations of 10 s, one per core -> 10 s on 64 cores.
        self.assertEqual(s.old_makespan, 10)
        self.assertAlmostEqual(s.efficiency(s.old_makespan), 140 / 640)

    def test_batch_sizes_are_the_first_stars_and_the_all_molecules_mask_then_the_moved_stars(self):
        self.assertEqual(b.batch_sizes(15, 2, 10), [160, 140, 140])
        self.assertEqual(b.batch_sizes(5, 1, 1), [6, 4])

    def test_the_busy_fraction_is_task_seconds_over_wall_times_cores(self):
        self.assertAlmostEqual(b.busy_fraction(30, 20, 2), 0.75)
        self.assertEqual(b.busy_fraction(30, 0, 2), 0.0)


class EventLogReading(unittest.TestCase):
    def write(self, events):
        d = tempfile.mkdtemp()
        path = os.path.join(d, "app-1")
        with open(path, "w") as f:
            for e in events:
                f.write(json.dumps(e) + "\n")
        return path

    def test_tasks_stages_and_cores_are_read_and_failed_attempts_left_out(self):
        path = self.write([
            {"Event": "SparkListenerApplicationStart", "Timestamp": 1_000_000},
            {"Event": "SparkListenerExecutorAdded", "Executor ID": "0",
             "Executor Info": {"Total Cores": 1}},
            {"Event": "SparkListenerExecutorAdded", "Executor ID": "1",
             "Executor Info": {"Total Cores": 1}},
            task_end(0, 1, "1", 1_001_000, 1_003_500),
            task_end(0, 0, "0", 1_001_000, 1_002_000),
            stage_done(0, 2, 1_000_900, 1_003_600),
            task_end(1, 0, "0", 1_004_000, 1_004_100, reason="ExceptionFailure"),
            task_end(1, 0, "1", 1_004_200, 1_005_200),
            stage_done(1, 1, 1_003_900, 1_005_300),
            {"Event": "SparkListenerApplicationEnd", "Timestamp": 1_006_000},
        ])
        log = b.read_event_log(path)
        self.assertEqual((log.started, log.ended), (1000.0, 1006.0))
        self.assertEqual(log.executor_cores, {"0": 1, "1": 1})
        self.assertEqual([(t.index, t.seconds) for t in log.stage_tasks(0)], [(0, 1.0), (1, 2.5)])
        self.assertEqual([(t.executor, t.seconds) for t in log.stage_tasks(1)], [("1", 1.0)])
        self.assertEqual(log.stages[1].tasks, 1)
        # The batches are the stages of the expected sizes, in order, units by index.
        self.assertEqual(b.unit_batches_from_log(log, [2, 1]), [[1.0, 2.5], [1.0]])
        self.assertIsNone(b.unit_batches_from_log(log, [2, 2]))

    def test_without_unit_tasks_the_times_file_splits_each_evaluation_over_its_folds(self):
        times = {"number_of_iterations": [0, 0, 1], "execution_times": [3.0, 6.0, 1.5]}
        self.assertEqual(b.unit_batches_from_times(times, 3),
                         [[1.0, 1.0, 1.0, 2.0, 2.0, 2.0], [0.5, 0.5, 0.5]])


if __name__ == "__main__":
    unittest.main()
