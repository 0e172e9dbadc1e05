"""The batch cost model: prices from bench.prices, per-million figures, the defaults it picks."""

import pytest

from bench import batch_cost, prices


@pytest.fixture(scope="module")
def rows():
    return batch_cost.cost_rows(compute_ms=200.0, memory_mb=2048, arch="x86_64")


def test_api_row_is_compute_plus_two_requests(rows):
    api = rows[0]
    compute = 2.0 * 0.2 * prices.GB_SECOND_USD["x86_64"]
    assert api["mode"] == "api" and api["compute"] == pytest.approx(compute)
    assert api["total"] == pytest.approx(compute + prices.REQUEST_USD + prices.HTTP_API_REQUEST_USD)


@pytest.mark.parametrize("mode", ["batch STANDARD", "batch EXPRESS"])
def test_orchestration_per_image_falls_with_batch_size(rows, mode):
    per_size = [r["orchestration"] + r["lambda_requests"] for r in rows if r["mode"] == mode]
    assert len(per_size) == len(batch_cost.BATCH_SIZES) and per_size == sorted(per_size, reverse=True)


def test_every_batch_row_pays_one_get_one_put_and_a_thousandth_of_a_list(rows):
    s3 = prices.S3_GET_USD + prices.S3_PUT_LIST_USD * 1.001
    assert all(r["s3"] == pytest.approx(s3) for r in rows if r["mode"] != "api")


def test_express_bills_a_100_ms_minimum_in_64_mb_steps():
    assert prices.express_usd(duration_ms=10) == prices.express_usd(duration_ms=100)
    assert prices.express_usd(duration_ms=1000, memory_mb=65) == pytest.approx(
        prices.SFN_EXPRESS_REQUEST_USD + 128 / 1024 * 1.0 * prices.SFN_EXPRESS_GB_SECOND_USD)


def test_defaults_prefer_the_smaller_batch_when_the_bigger_saves_little(rows):
    best = batch_cost.pick_defaults(rows)
    cheapest = min(r["total"] for r in rows if r["mode"] != "api")
    assert best["total"] <= cheapest * (1 + batch_cost.MARGINAL_GAIN)
    assert best["batch_size"] < 100


def test_slow_models_pick_standard_children():
    rows = batch_cost.cost_rows(compute_ms=2000.0, memory_mb=2048)
    assert batch_cost.pick_defaults(rows)["mode"] == "batch STANDARD"


def test_cli_prints_the_table_and_the_verdict(capsys):
    assert batch_cost.main(["--compute-ms", "224.7", "--memory-mb", "1769"]) == 0
    out = capsys.readouterr().out
    assert out.count("| batch STANDARD |") == out.count("| batch EXPRESS |") == len(batch_cost.BATCH_SIZES) and \
           "defaults: batch EXPRESS, batch size 50" in out


def test_cli_needs_both_compute_and_memory():
    with pytest.raises(SystemExit):
        batch_cost.main(["--compute-ms", "10"])
