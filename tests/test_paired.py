"""Paired accuracy: per-sample correctness from the agent, each sample counted once, and paired differences.

Intervals are checked against published worked examples, McNemar's test against binomial sums
done by hand, the paired interval's coverage by simulation, and the whole path on real runs of
the zoo's int8 and fp32 models over the committed Fashion-MNIST subset.
"""

from __future__ import annotations

import itertools
import math

import msgspec
import numpy as np
import pytest

from agent import bench, contract, datasets
from agent.accuracy import pack_correctness, unpack_correctness
from agent.contract import Accuracy
from agent.datasets import fashion_mnist
from agent.errors import DatasetError
from agent.scenarios.settings import Mode, Scenario, for_profile
from agent.stats import wilson_interval
from controller.analysis import paired

SUBSET = "fashion-mnist:subset"


def block(correct: np.ndarray | list[int], samples: str | None = "a" * 64) -> Accuracy:
    """An accuracy block as a result carries it, checked by the contract; ``samples=None`` is an older agent's."""
    correct = np.asarray(correct, dtype=bool)
    n, k = correct.size, int(correct.sum())
    doc = {"top1": k / n, "ci95": list(wilson_interval(k, n)), "n": n, "correct": k}
    if samples is not None:
        doc |= {"correct_bits": pack_correctness(correct), "samples_sha256": samples}
    return contract.build(Accuracy, doc)


def older(accuracy: Accuracy) -> Accuracy:
    """The same run as an agent without per-sample records would have sent it."""
    return msgspec.structs.replace(accuracy, correct_bits=None, samples_sha256=None)


def table(a: int, b: int, c: int, d: int) -> tuple[np.ndarray, np.ndarray]:
    """Per-sample correctness of a new and a reference model with a given paired 2x2 table."""
    new = [1] * a + [1] * b + [0] * c + [0] * d
    ref = [1] * a + [0] * b + [1] * c + [0] * d
    return np.array(new, dtype=bool), np.array(ref, dtype=bool)


# --- the statistics, on published and hand-worked numbers ------------------------------------------


@pytest.mark.parametrize(("a", "b", "c", "d", "lo", "hi"), [
    (36, 12, 2, 0, 0.0569, 0.3404),  # Newcombe (1998) paired examples, method 10 (as the R package propint tests them)
    (18, 12, 2, 18, 0.0562, 0.3290),
    (53, 0, 0, 1, -0.0729, 0.0729),
    (0, 30, 0, 0, 0.8395, 1.0),
    (59, 6, 16, 80, -0.1186, -0.0046),  # Cavo et al. 2012 in Fagerland, Lydersen & Laake's book (R contingencytables)
])
def test_the_paired_interval_reproduces_newcombes_method_10(a, b, c, d, lo, hi):
    """Published to four decimals: the φ correction (ad - bc shrunk by n/2) decides the first, second and last."""
    got = paired.newcombe_paired(a, b, c, d)
    assert got == pytest.approx((lo, hi), abs=6e-5)


@pytest.mark.parametrize(("x1", "n1", "x2", "n2", "lo", "hi"), [
    (56, 70, 48, 80, 0.0524, 0.3339),  # Newcombe (1998) independent proportions, method 10
    (9, 10, 3, 10, 0.1705, 0.8090),
])
def test_the_unpaired_interval_reproduces_newcombes_method_10(x1, n1, x2, n2, lo, hi):
    assert paired.newcombe_unpaired(x1, n1, x2, n2) == pytest.approx((lo, hi), abs=6e-5)


def test_exact_mcnemar_is_the_binomial_tail_of_the_discordant_pairs():
    """Two-sided: twice the smaller tail of Binomial(b + c, 1/2), at most 1 — sums worked by hand."""
    # 6 vs 16 of 22: C(22,0..6) = 1+22+231+1540+7315+26334+74613 = 110056 (0.052479, as Fagerland et al. print)
    assert paired.mcnemar_exact(6, 16) == pytest.approx(2 * 110056 / 2**22, rel=1e-12)
    assert paired.mcnemar_exact(16, 6) == paired.mcnemar_exact(6, 16)
    assert paired.mcnemar_exact(0, 5) == pytest.approx(2 / 32)  # 2 * (1/2)^5
    assert paired.mcnemar_exact(1, 4) == pytest.approx(2 * (1 + 5) / 32)
    assert paired.mcnemar_exact(3, 3) == 1.0 and paired.mcnemar_exact(0, 0) == 1.0


def test_the_paired_interval_covers_95_percent_in_realistic_settings():
    """Coverage of the true difference over simulated tables: 200-2000 samples, accuracy 0.70-0.95,
    1-5 % of samples discordant, split evenly, 1:3 or all one way (the hardest case). Every
    setting covers at least 93 %, and the grid as a whole at least 95 %."""
    rng = np.random.default_rng(20260101)
    coverage = {}
    for n, accuracy, discordant, share in itertools.product((200, 1000, 2000), (0.70, 0.85, 0.95), (0.01, 0.03, 0.05),
                                                            (0.5, 0.25, 0.0)):
        new_only, ref_only = discordant * share, discordant * (1 - share)
        cells = [accuracy - ref_only, new_only, ref_only, 1 - accuracy - new_only]
        tables, counts = np.unique(rng.multinomial(n, cells, size=3000), axis=0, return_counts=True)
        truth = new_only - ref_only
        covered = [lo <= truth <= hi for lo, hi in (paired.newcombe_paired(*map(int, t)) for t in tables)]
        coverage[(n, accuracy, discordant, share)] = float(np.dot(covered, counts) / counts.sum())
    worst = min(coverage, key=coverage.__getitem__)
    assert coverage[worst] >= 0.93, (worst, coverage[worst])
    assert np.mean(list(coverage.values())) >= 0.95


def test_one_sided_tables_stay_inside_minus_one_to_one():
    assert paired.newcombe_paired(0, 30, 0, 0)[1] == 1.0
    assert paired.newcombe_paired(0, 0, 30, 0)[0] == -1.0
    with pytest.raises(ValueError, match="no interval"):
        paired.newcombe_paired(0, 0, 0, 0)


# --- pooled: each sample once -------------------------------------------------------------------


def test_two_runs_of_one_dataset_count_its_samples_once():
    run = block([1] * 85 + [0] * 15)
    once, twice = paired.pooled([run]), paired.pooled([run, run])
    assert (twice.samples, twice.runs, twice.value) == (100, 2, 0.85)
    assert (twice.lo, twice.hi) == (once.lo, once.hi) == pytest.approx(wilson_interval(85, 100))
    assert once.method == "wilson" and twice.method == "wilson, mean of runs per sample"


def test_runs_that_disagree_count_each_sample_at_its_mean():
    a, b = block([1] * 80 + [0] * 20), block([1] * 70 + [0] * 30)  # same 100 samples, 10 scored differently
    got = paired.pooled([a, b])
    assert got.samples == 100 and got.value == pytest.approx(0.75)
    assert (got.lo, got.hi) == pytest.approx(wilson_interval(75, 100))


def test_runs_over_different_datasets_add_up():
    got = paired.pooled([block([1] * 90 + [0] * 10, "a" * 64), block([1] * 40 + [0] * 10, "b" * 64)])
    assert (got.samples, got.runs, got.value) == (150, 2, pytest.approx(130 / 150))


def test_older_runs_are_matched_by_size():
    """Without a fingerprint, a run of the size of a known dataset is taken to have scored it: counting
    its samples once more could only widen the interval, counting them twice would narrow it falsely."""
    new_agent, old_agent = block([1] * 90 + [0] * 10), older(block([1] * 80 + [0] * 20))
    mixed = paired.pooled([new_agent, old_agent])
    assert (mixed.samples, mixed.value, mixed.method) == (100, pytest.approx(0.85), "wilson, same-size runs as one")
    both_old = paired.pooled([older(new_agent), old_agent])
    assert (both_old.samples, both_old.value) == (100, pytest.approx(0.85))
    other_size = paired.pooled([new_agent, older(block([1] * 40 + [0] * 10))])
    assert other_size.samples == 150


def test_nothing_scored_is_no_accuracy():
    assert paired.pooled([]) is None
    assert paired.delta([], [block([1, 0])]) is None


# --- delta: paired where the samples allow it ---------------------------------------------------


def test_a_paired_delta_reads_the_table_of_the_same_samples():
    new, ref = table(850, 12, 20, 118)
    got = paired.delta([block(new)], [block(ref)])
    assert got.paired and got.method == "Newcombe paired (1998, method 10)"
    assert got.delta == pytest.approx((12 - 20) / 1000) and got.n == 1000 and got.discordant == (12, 20)
    assert (got.lo, got.hi) == pytest.approx(paired.newcombe_paired(850, 12, 20, 118))
    assert got.p_value == pytest.approx(paired.mcnemar_exact(12, 20))


def test_without_per_sample_records_the_delta_is_unpaired_and_says_so():
    new, ref = table(850, 12, 20, 118)
    got = paired.delta([older(block(new))], [block(ref)])
    assert not got.paired and got.method == "Newcombe unpaired (1998, method 10)" and got.discordant is None
    assert (got.lo, got.hi) == pytest.approx(paired.newcombe_unpaired(862, 1000, 870, 1000))
    assert got.p_value == pytest.approx(paired.two_proportion_p(862, 1000, 870, 1000)) and got.n == 2000
    tight = paired.delta([block(new)], [block(ref)])
    assert got.hi - got.lo > 2 * (tight.hi - tight.lo)  # what pairing buys (32 of 1,000 discordant)


def test_different_samples_are_not_paired():
    new, ref = table(850, 12, 20, 118)
    assert not paired.delta([block(new, "a" * 64)], [block(ref, "b" * 64)]).paired


def test_a_side_whose_runs_disagree_is_paired_at_its_mean():
    """Two new runs differ on 10 samples: the table holds expected counts, McNemar rounds them."""
    new_a, ref = table(850, 12, 20, 118)
    new_b = new_a.copy()
    new_b[:10] = False  # 10 samples both got right become new-wrong in the second run
    got = paired.delta([block(new_a), block(new_b)], [block(ref)])
    assert got.paired and got.method.endswith("mean of runs per sample")
    assert got.delta == pytest.approx(paired.pooled([block(new_a), block(new_b)]).value - 870 / 1000)
    assert got.discordant == (12, 25)  # 20 + 10 x 1/2


def test_one_sample_count_per_fingerprint():
    with pytest.raises(ValueError, match="disagree on their number"):
        paired.pooled([block([1, 0, 1]), block([1, 0])])


# --- the agent side: fingerprints and real runs --------------------------------------------------


def test_bits_round_trip_in_dataset_order():
    correct = np.array([1, 1, 0, 1, 1, 0, 0, 1, 0, 1], dtype=bool)
    bits = pack_correctness(correct)
    assert bits == "2UA="  # 11011001 01000000: the first sample is the high bit, padding is zero
    assert unpack_correctness(bits, 10).tolist() == correct.tolist()


def test_a_fingerprint_changes_with_any_input_label_or_order():
    data = fashion_mnist.committed_subset()
    images, labels = data.images[:50].copy(), data.labels[:50].copy()
    base = datasets.fingerprint(images, labels)
    assert datasets.fingerprint(images.copy(), labels.copy()) == base
    images[7, 3, 3] ^= 1
    assert datasets.fingerprint(images, labels) != base
    images[7, 3, 3] ^= 1
    labels[9] = (labels[9] + 1) % 10
    assert datasets.fingerprint(images, labels) != base
    labels[9] = data.labels[9]
    assert datasets.fingerprint(images[::-1], labels[::-1]) != base


def test_only_labelled_samples_with_their_inputs_can_be_fingerprinted():
    inputs = np.arange(8, dtype=np.uint8).reshape(2, 4)
    samples = datasets.Samples("two", "test", [{}, {}], np.array([3, 1]), inputs)
    assert samples.fingerprint(np.array([1])) == datasets.fingerprint(inputs[1:], np.array([1]))
    with pytest.raises(DatasetError, match="no labelled inputs"):
        datasets.Samples("unlabelled", "test", [{}, {}], None).fingerprint(np.array([0]))


def accuracy_run(model: str) -> Accuracy:
    settings = for_profile("smoke", Scenario.SINGLE_STREAM, Mode.ACCURACY)
    doc = bench.run(bench.BenchRequest(model=f"zoo:fashion-mnist-cnn/{model}", settings=settings, dataset=SUBSET,
                                       engine="native", warmup_runs=1))
    return contract.convert("result", doc).kpis.accuracy


@pytest.fixture(scope="module")
def runs() -> dict[str, Accuracy]:
    """Real accuracy runs over the 1,000 committed images: the int8 LiteRT model twice, the fp32 ONNX once."""
    return {"int8": accuracy_run("int8.tflite"), "int8 again": accuracy_run("int8.tflite"), "fp32": accuracy_run("fp32.onnx")}


def test_a_real_run_carries_which_samples_it_got_right(runs):
    data = fashion_mnist.committed_subset()
    for acc in runs.values():
        bits = unpack_correctness(acc.correct_bits, acc.n)
        assert acc.n == 1000 and int(bits.sum()) == acc.correct and 0.85 <= acc.top1 <= 0.92
        assert acc.samples_sha256 == datasets.fingerprint(data.images, data.labels)  # whatever the dataset's name
    assert runs["int8"].correct_bits == runs["int8 again"].correct_bits  # one machine and runtime: the same samples


def test_int8_against_fp32_is_paired_and_much_narrower(runs):
    both = paired.delta([runs["int8"]], [runs["fp32"]])
    unpaired = paired.delta([older(runs["int8"])], [older(runs["fp32"])])
    assert both.paired and not unpaired.paired
    assert both.delta == pytest.approx(unpaired.delta) and both.lo <= both.delta <= both.hi
    assert both.hi - both.lo < (unpaired.hi - unpaired.lo) / 2
    assert sum(both.discordant) > 0 and both.n == 1000
    assert math.isclose(both.delta, (both.discordant[0] - both.discordant[1]) / 1000)
    assert paired.pooled([runs["int8"], runs["int8 again"]]).samples == 1000
