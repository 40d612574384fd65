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
