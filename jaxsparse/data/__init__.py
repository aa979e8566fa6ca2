"""Datasets for experiments, all readable offline.

* `load_digits_split`, `load_breast_cancer_split`: real data bundled with scikit-learn, split
  deterministically and stratified.
* `load_stdlib_code_corpus`, `sample_windows`: a byte-level code corpus from the Python standard
  library's own sources, split by file, and next-token windows drawn from it.
* `load_tfds_arrays`, `iter_tfds_batches`: named tensorflow-datasets (CIFAR-10, MNIST, ...) via
  `tfds.data_source` (no TensorFlow); never downloads unless asked.
* `iterate_minibatches`, `num_batches`: deterministic epochs over numpy arrays.

Heavy dependencies (scikit-learn, tensorflow-datasets, JAX for key-driven sampling) are imported only
when a function needs them.
"""

from jaxsparse.data._batching import iterate_minibatches, num_batches
from jaxsparse.data._code import CodeCorpus, load_stdlib_code_corpus, sample_windows, stdlib_root
from jaxsparse.data._tabular import Split, load_breast_cancer_split, load_digits_split
from jaxsparse.data._tfds import iter_tfds_batches, load_tfds_arrays

__all__ = [
    "CodeCorpus",
    "Split",
    "iter_tfds_batches",
    "iterate_minibatches",
    "load_breast_cancer_split",
    "load_digits_split",
    "load_stdlib_code_corpus",
    "load_tfds_arrays",
    "num_batches",
    "sample_windows",
    "stdlib_root",
]
