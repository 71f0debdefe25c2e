import hashlib

import numpy as np
import pytest

from lowprec import datasets


def test_digits_shape_and_content():
    x, y = datasets.digits()
    assert x.shape == (1797, 64) and y.shape == (1797,)
    assert x.dtype == np.uint8 and y.dtype == np.uint8
    assert x.min() == 0 and x.max() == 16
    # class counts of the published set (scikit-learn's load_digits)
    assert np.bincount(y).tolist() == [178, 182, 177, 183, 181, 182, 181, 179, 174, 180]
    # the digest recorded in DIGITS-CITATION.txt: the data were not altered
    h = hashlib.sha256(x.tobytes() + y.tobytes()).hexdigest()
    assert h == "87ff0c9e40dc7e2c0e34e7257799c2e3f3aec1a016363bb11cad869ec428a826"
    # first row of the original CSV
    assert x[0].tolist()[:16] == [0, 0, 5, 13, 9, 1, 0, 0, 0, 0, 13, 15, 10, 15, 5, 0]
    assert y[0] == 0


def test_citation_ships_beside_the_data():
    from importlib import resources
    text = resources.files("lowprec").joinpath("data/DIGITS-CITATION.txt").read_text()
    assert "CC BY 4.0" in text and "Alpaydin" in text


def test_split_is_stratified_seeded_and_disjoint():
    s = datasets.load_digits(seed=3)
    assert s.x_train.dtype == np.float32 and s.x_train.shape[1] == 64
    assert len(s.y_train) + len(s.y_test) == 1797
    assert 0.0 <= s.x_train.min() and s.x_train.max() <= 1.0
    counts = np.bincount(datasets.digits()[1])
    te = np.bincount(s.y_test, minlength=10)
    assert np.array_equal(te, np.round(counts * 0.2).astype(int))
    assert s.n_classes == 10
    again = datasets.load_digits(seed=3)
    assert np.array_equal(s.x_test, again.x_test) and np.array_equal(s.y_train, again.y_train)
    other = datasets.load_digits(seed=4)
    assert not np.array_equal(s.y_test, other.y_test) or not np.array_equal(s.x_test, other.x_test)
    tr, te_idx = datasets.stratified_split(datasets.digits()[1], 0.2, 3)
    assert not set(tr) & set(te_idx) and len(tr) + len(te_idx) == 1797


@pytest.mark.parametrize("bad", [0.0, 1.0, -0.1, 1.5])
def test_bad_fraction(bad):
    with pytest.raises(ValueError, match="test_fraction"):
        datasets.load_digits(test_fraction=bad)
