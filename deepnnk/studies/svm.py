"""The authors' linear-SVM baseline of notebook 02: ``LinearSVC(C=1000)`` in ``KFold(5)``.

Only the baseline itself (features in, errors out); its cached per-checkpoint use is
:func:`deepnnk.studies.loo.checkpoint_svm`, whose cache key carries a digest of this module's
source (:data:`deepnnk.studies.loo.SVM_CODE`).
"""

from __future__ import annotations

import time
import warnings

import numpy as np


def svm_cv_error(
    train_feats,
    y_train,
    test_feats,
    y_test,
    n_splits: int = 5,
    C: float = 1000.0,
    max_iter: int = 1000,
    random_state: int | None = 0,
) -> dict:
    """The authors' linear-SVM baseline: ``LinearSVC(C=1000)`` in ``KFold(5)`` (no shuffling).

    Train-side error = 1 − mean accuracy on the held-out folds; test-side error = 1 − mean test
    accuracy of the fold models. Unscaled features, squared hinge, max_iter 1000, and the dual
    solver (the scikit-learn default when the paper was written; today's "auto" would pick the
    primal here). It often stops at max_iter without converging — reproduced as published; the
    ConvergenceWarnings are counted, not shown. ``random_state`` fixes liblinear's coordinate
    order so that results are reproducible (the authors left it unset).
    """
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.model_selection import KFold
    from sklearn.svm import LinearSVC

    X = np.asarray(train_feats)
    y = np.asarray(y_train)
    Xt = np.asarray(test_feats)
    yt = np.asarray(y_test)
    val_acc, test_acc, fit_seconds = [], [], []
    n_warn = 0
    t0 = time.perf_counter()
    for tr, va in KFold(n_splits).split(X):
        t = time.perf_counter()
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", ConvergenceWarning)
            clf = LinearSVC(C=C, max_iter=max_iter, dual=True, random_state=random_state)
            clf.fit(X[tr], y[tr])
        fit_seconds.append(time.perf_counter() - t)
        n_warn += sum(issubclass(w.category, ConvergenceWarning) for w in caught)
        for w in caught:
            if not issubclass(w.category, ConvergenceWarning):
                warnings.warn_explicit(w.message, w.category, w.filename, w.lineno)
        val_acc.append(float(np.mean(clf.predict(X[va]) == y[va])))
        test_acc.append(float(np.mean(clf.predict(Xt) == yt)))
    return {
        "train_error": 1.0 - float(np.mean(val_acc)),
        "test_error": 1.0 - float(np.mean(test_acc)),
        "fold_val_accuracy": val_acc,
        "fold_test_accuracy": test_acc,
        "convergence_warnings": n_warn,
        "n_fits": n_splits,
        "n_fit_rows": int(len(X) - len(X) // n_splits),
        "fit_seconds": fit_seconds,
        "seconds": time.perf_counter() - t0,
    }
