import pytest

from detection.errors import ConfigError
from detection.events import DEFAULT_MAX_IMAGE_BYTES
from detection.image import DEFAULT_MAX_PIXELS
from detection.settings import DEFAULT_CACHE_DIR, Settings


def test_empty_environment_gives_the_defaults():
    assert Settings.from_env({}) == Settings()
    assert Settings() == Settings(model_uri="", endpoint_name="", score_threshold=None, model_cache_dir=DEFAULT_CACHE_DIR,
                                  max_image_bytes=DEFAULT_MAX_IMAGE_BYTES, max_image_pixels=DEFAULT_MAX_PIXELS,
                                  jpeg_draft=True, ort_threads=None)


def test_every_variable_is_read():
    env = {"MODEL_URI": " s3://m/p/ ", "ENDPOINT_NAME": "det-gpu", "SCORE_THRESHOLD": "0.25",
           "MODEL_CACHE_DIR": "/tmp/x", "MAX_IMAGE_BYTES": "1000", "MAX_IMAGE_PIXELS": "2000", "JPEG_DRAFT": "0",
           "ORT_THREADS": "2", "UNRELATED": "ignored"}
    assert Settings.from_env(env) == Settings(model_uri="s3://m/p/", endpoint_name="det-gpu", score_threshold=0.25,
                                              model_cache_dir="/tmp/x", max_image_bytes=1000, max_image_pixels=2000,
                                              jpeg_draft=False, ort_threads=2)


@pytest.mark.parametrize("blank", ["", "  "])
def test_blank_values_take_defaults(blank):
    env = dict.fromkeys(("SCORE_THRESHOLD", "MAX_IMAGE_BYTES", "JPEG_DRAFT", "ORT_THREADS", "MODEL_CACHE_DIR"), blank)
    assert Settings.from_env(env) == Settings()


@pytest.mark.parametrize("name, value, expected", [
    ("SCORE_THRESHOLD", "1.5", "SCORE_THRESHOLD must be a number between 0 and 1, got '1.5'"),
    ("SCORE_THRESHOLD", "nan", "SCORE_THRESHOLD must be a number between 0 and 1"),
    ("MAX_IMAGE_BYTES", "-1", "MAX_IMAGE_BYTES must be a positive integer, got '-1'"),
    ("MAX_IMAGE_PIXELS", "1e6", "MAX_IMAGE_PIXELS must be a positive integer"),
    ("ORT_THREADS", "0", "ORT_THREADS must be a positive integer"),
    ("JPEG_DRAFT", "maybe", "JPEG_DRAFT must be 1 or 0, got 'maybe'"),
])
def test_bad_values_name_the_variable(name, value, expected):
    with pytest.raises(ConfigError, match="invalid environment") as raised:
        Settings.from_env({name: value})
    assert expected in raised.value.message and raised.value.status == 500


def test_every_problem_is_reported_at_once():
    with pytest.raises(ConfigError) as raised:
        Settings.from_env({"ORT_THREADS": "x", "SCORE_THRESHOLD": "2"})
    assert "ORT_THREADS" in raised.value.message and "SCORE_THRESHOLD" in raised.value.message


@pytest.mark.parametrize("value, expected", [("1", 1), ("4", 4), ("32", 32), ("auto", None), ("AUTO", None)])
def test_inference_batch(value, expected):
    assert Settings.from_env({"INFERENCE_BATCH": value}).inference_batch == expected
    assert Settings().inference_batch is None  # auto


@pytest.mark.parametrize("value", ["0", "33", "four", "-2"])
def test_inference_batch_out_of_range_names_the_range(value):
    with pytest.raises(ConfigError, match=f"INFERENCE_BATCH must be auto or an integer from 1 to 32, got '{value}'"):
        Settings.from_env({"INFERENCE_BATCH": value})


@pytest.mark.parametrize("env, threads, expected", [
    ({}, 1, 1), ({}, 2, 4), ({}, 8, 4),                                                     # off Lambda: a CPU each
    ({"AWS_LAMBDA_FUNCTION_MEMORY_SIZE": "1769"}, 1, 1),
    ({"AWS_LAMBDA_FUNCTION_MEMORY_SIZE": "2048"}, 2, 1),  # two vCPUs but 1.16 vCPUs of CPU time
    ({"AWS_LAMBDA_FUNCTION_MEMORY_SIZE": "3538"}, 2, 4),
    ({"AWS_LAMBDA_FUNCTION_MEMORY_SIZE": "10240"}, 1, 1),  # ORT_THREADS=1: one thread cannot use them
    ({"AWS_LAMBDA_FUNCTION_MEMORY_SIZE": "1024", "INFERENCE_BATCH": "8"}, 1, 8),             # explicit wins
    ({"INFERENCE_BATCH": "1"}, 4, 1),
])
def test_images_per_run(env, threads, expected):
    assert Settings.from_env(env).images_per_run(threads=threads) == expected
