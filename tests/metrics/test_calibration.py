import numpy as np
import pytest

from scmatch.metrics import calibration_bins, expected_calibration_error


def test_bins_count_and_average_by_hand():
    conf = [0.05, 0.15, 0.15, 0.95, 1.0]
    right = [False, True, False, True, True]
    table = calibration_bins(conf, right, n_bins=10)
    assert table["n_cells"].tolist() == [1, 2, 0, 0, 0, 0, 0, 0, 0, 2]  # 1.0 falls in the last bin
    np.testing.assert_allclose(table["accuracy"].iloc[[0, 1, 9]], [0.0, 0.5, 1.0])
    np.testing.assert_allclose(table["mean_confidence"].iloc[[0, 1, 9]], [0.05, 0.15, 0.975])
    assert table["accuracy"].iloc[2:9].isna().all()
    # ECE = (1 * 0.05 + 2 * 0.35 + 2 * 0.025) / 5
    assert expected_calibration_error(conf, right) == pytest.approx((0.05 + 0.7 + 0.05) / 5)


def test_a_calibrated_confidence_has_a_small_ece_and_an_overconfident_one_does_not():
    rng = np.random.default_rng(0)
    conf = rng.uniform(0, 1, 20000)
    right = rng.uniform(0, 1, 20000) < conf
    assert expected_calibration_error(conf, right) < 0.02
    assert expected_calibration_error(np.sqrt(conf), right) > 0.1


@pytest.mark.parametrize(
    ("conf", "right", "message"),
    [([0.5, 1.5], [True, False], "in \\[0, 1\\]"), ([0.5, np.nan], [True, False], "finite"),
     ([0.5], [True, False], "one per cell"), ([0.5, 0.2], [2, 0], "boolean"), ([], [], "No cells")],
)  # fmt: skip
def test_bad_input(conf, right, message):
    with pytest.raises(ValueError, match=message):
        expected_calibration_error(conf, right)
    with pytest.raises(ValueError, match="n_bins"):
        calibration_bins([0.5], [True], n_bins=0)


def test_ece_under_calibration_is_the_sampling_noise_of_a_perfect_confidence():
    """The ECE of draws where each cell is right with its confidence: about 0.09 on 100 cells, 0.05 on 300, falling
    as one over the square root of the cells; the same draws as scoring each one with expected_calibration_error."""
    from scmatch.metrics import ece_under_calibration

    means = {n: ece_under_calibration(np.linspace(0.3, 1.0, n), n_draws=500).mean() for n in (100, 300, 3000)}
    assert means[100] == pytest.approx(0.09, abs=0.01)  # measured: 0.088, 0.051, 0.016
    assert means[300] == pytest.approx(0.052, abs=0.008)
    assert means[3000] == pytest.approx(0.016, abs=0.004)
    conf = np.random.default_rng(3).uniform(0.2, 1.0, 50)
    draws = ece_under_calibration(conf, n_bins=5, n_draws=200, random_state=7)
    rng = np.random.default_rng(7)  # the same stream, drawn in chunks of 64 draws
    direct = [expected_calibration_error(conf, row < conf, n_bins=5) for row in rng.random((64, 50))]
    np.testing.assert_allclose(draws[:64], direct, atol=1e-12)
    np.testing.assert_array_equal(draws, ece_under_calibration(conf, n_bins=5, n_draws=200, random_state=7))
    for bad in ({"n_draws": 0}, {"n_bins": 0}):
        with pytest.raises(ValueError, match=next(iter(bad))):
            ece_under_calibration(conf, **bad)
    with pytest.raises(ValueError, match="in \\[0, 1\\]"):
        ece_under_calibration([0.5, 1.5])
