"""Tests for the standard-library byte corpus and next-token window sampling."""

import sysconfig
from pathlib import Path

import jax
import numpy as np
import pytest

from jaxsparse.data import CodeCorpus, load_stdlib_code_corpus, sample_windows, stdlib_root

STDLIB = Path(sysconfig.get_paths()["stdlib"])
SMALL = {"max_files": 40, "max_bytes": 400_000}


@pytest.fixture(scope="module")
def small_corpus() -> CodeCorpus:
    return load_stdlib_code_corpus(seed=0, heldout_fraction=0.2, **SMALL)


def _bytes_of(root: Path, files) -> np.ndarray:
    data = b"".join((root / f).read_bytes() for f in files)
    return np.frombuffer(data, dtype=np.uint8)


def test_small_corpus_matches_the_files(small_corpus):
    c = small_corpus
    assert c.vocab_size == 256 and Path(c.root) == STDLIB == stdlib_root()
    assert c.train_files and c.heldout_files
    assert not set(c.train_files) & set(c.heldout_files)
    assert len(set(c.train_files)) == len(c.train_files) and len(set(c.heldout_files)) == len(c.heldout_files)
    assert len(c.train_files) + len(c.heldout_files) <= SMALL["max_files"]
    assert c.train_tokens.size + c.heldout_tokens.size <= SMALL["max_bytes"]
    for files, tokens in ((c.train_files, c.train_tokens), (c.heldout_files, c.heldout_tokens)):
        assert tokens.dtype == np.int32 and tokens.ndim == 1
        assert tokens.min() >= 0 and tokens.max() <= 255
        np.testing.assert_array_equal(tokens, _bytes_of(STDLIB, files))
        for f in files:
            parts = Path(f).parts
            assert f.endswith(".py") and (STDLIB / f).is_file()
            assert "site-packages" not in parts and not {"test", "tests", "idle_test"} & set(parts)


def test_deterministic_and_seed_dependent(small_corpus):
    again = load_stdlib_code_corpus(seed=0, heldout_fraction=0.2, **SMALL)
    assert again.train_files == small_corpus.train_files
    assert again.heldout_files == small_corpus.heldout_files
    np.testing.assert_array_equal(again.train_tokens, small_corpus.train_tokens)
    other = load_stdlib_code_corpus(seed=1, heldout_fraction=0.2, **SMALL)
    assert set(other.train_files) != set(small_corpus.train_files)
    assert set(other.heldout_files) != set(small_corpus.heldout_files)


def test_heldout_membership_is_stable_across_caps(small_corpus):
    big = load_stdlib_code_corpus(seed=0, heldout_fraction=0.2, max_files=200)
    assert not set(small_corpus.heldout_files) & set(big.train_files)
    assert not set(big.heldout_files) & set(small_corpus.train_files)


def test_full_stdlib_split_fraction():
    c = load_stdlib_code_corpus(seed=0, heldout_fraction=0.1)
    n = len(c.train_files) + len(c.heldout_files)
    assert n > 100
    assert 0.05 < len(c.heldout_files) / n < 0.15
    assert c.train_tokens.size > 1_000_000


def test_directory_rules_on_a_written_tree(tmp_path):
    files = {
        "a.py": b"print('a')\n",
        "pkg/__init__.py": b"",  # empty: skipped
        "pkg/mod.py": b"x = 1\n",
        "pkg/test/test_mod.py": b"assert True\n",
        "tests/t.py": b"t = 2\n",
        "site-packages/dep.py": b"dep = 3\n",
        "notes.txt": b"not python\n",
    }
    for rel, data in files.items():
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_bytes(data)
    c = load_stdlib_code_corpus(root=tmp_path, heldout_fraction=0.0)
    assert sorted(c.train_files) == ["a.py", "pkg/mod.py"] and c.heldout_files == ()
    assert c.heldout_tokens.shape == (0,) and c.heldout_tokens.dtype == np.int32
    np.testing.assert_array_equal(c.train_tokens, _bytes_of(tmp_path, c.train_files))
    with_tests = load_stdlib_code_corpus(root=tmp_path, heldout_fraction=0.0, include_tests=True)
    assert sorted(with_tests.train_files) == ["a.py", "pkg/mod.py", "pkg/test/test_mod.py", "tests/t.py"]


@pytest.mark.parametrize(
    ("kwargs", "argname"),
    [
        ({"seed": -1}, "seed"),
        ({"seed": "0"}, "seed"),
        ({"heldout_fraction": 1.0}, "heldout_fraction"),
        ({"heldout_fraction": -0.1}, "heldout_fraction"),
        ({"max_files": 1}, "max_files"),
        ({"max_files": 2.0}, "max_files"),
        ({"max_bytes": 0}, "max_bytes"),
        ({"max_bytes": 10}, "max_bytes"),  # no file is that small
        ({"include_tests": "yes"}, "include_tests"),
        ({"root": "/nonexistent/dir"}, "root"),
        ({"root": 3}, "root"),
    ],
)
def test_corpus_bad_arguments(kwargs, argname):
    with pytest.raises(ValueError, match=argname):
        load_stdlib_code_corpus(**kwargs)


def test_corpus_empty_root(tmp_path):
    with pytest.raises(ValueError, match="root"):
        load_stdlib_code_corpus(root=tmp_path)


@pytest.mark.parametrize("key_or_seed", [7, jax.random.key(7), jax.random.PRNGKey(7)])
def test_windows_are_shifted_by_one(key_or_seed):
    tokens = np.arange(1000, dtype=np.int32)
    inputs, targets = sample_windows(tokens, key_or_seed=key_or_seed, batch_size=16, seq_len=32)
    assert inputs.shape == targets.shape == (16, 32)
    assert inputs.dtype == targets.dtype == np.int32
    np.testing.assert_array_equal(targets, inputs + 1)  # arange: next token is +1
    np.testing.assert_array_equal(inputs - inputs[:, :1], np.broadcast_to(np.arange(32), (16, 32)))
    assert inputs.min() >= 0 and targets.max() <= 999
    again = sample_windows(tokens, key_or_seed=key_or_seed, batch_size=16, seq_len=32)
    np.testing.assert_array_equal(again[0], inputs)


def test_windows_on_real_tokens(small_corpus):
    tokens = small_corpus.train_tokens
    inputs, targets = sample_windows(tokens, key_or_seed=0, batch_size=8, seq_len=64)
    np.testing.assert_array_equal(inputs[:, 1:], targets[:, :-1])
    other, _ = sample_windows(tokens, key_or_seed=1, batch_size=8, seq_len=64)
    assert not np.array_equal(inputs, other)
    keyed, _ = sample_windows(tokens, key_or_seed=jax.random.key(1), batch_size=8, seq_len=64)
    assert not np.array_equal(inputs, keyed)
    # Exact fit: the only window is the whole stream.
    x, y = sample_windows(tokens[:65], key_or_seed=0, batch_size=2, seq_len=64)
    np.testing.assert_array_equal(x, np.broadcast_to(tokens[:64], (2, 64)))
    np.testing.assert_array_equal(y, np.broadcast_to(tokens[1:65], (2, 64)))


@pytest.mark.parametrize(
    ("tokens", "kwargs", "argname"),
    [
        (np.arange(10), {"seq_len": 10}, "seq_len"),
        (np.arange(10), {"seq_len": 0}, "seq_len"),
        (np.arange(10), {"batch_size": 0}, "batch_size"),
        (np.arange(10), {"batch_size": 2.0}, "batch_size"),
        (np.arange(10), {"key_or_seed": -1}, "key_or_seed"),
        (np.arange(10), {"key_or_seed": "a"}, "key_or_seed"),
        (np.arange(10), {"key_or_seed": None}, "key_or_seed"),
        (np.arange(10), {"key_or_seed": np.zeros(3, np.uint32)}, "key_or_seed"),
        (np.arange(10).reshape(2, 5), {}, "tokens"),
        (np.linspace(0, 1, 10), {}, "tokens"),
    ],
)
def test_windows_bad_arguments(tokens, kwargs, argname):
    args = {"key_or_seed": 0, "batch_size": 2, "seq_len": 3} | kwargs
    with pytest.raises(ValueError, match=argname):
        sample_windows(tokens, **args)
