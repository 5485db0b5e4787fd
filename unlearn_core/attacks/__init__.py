"""Membership-inference attacks by name: ``create_attack("rmia", gamma=2.0)``, in report order
``list_attacks()``; the pure feature, ROC and diagnostic helpers are in ``functional`` (re-exported
here: ``attacks.roc_summary``, ``attacks.centroid_similarity``, ...).

Adding an attack = one new module here that defines a class decorated with ``@register_attack``
(a ``ScoreAttack`` states its features per audit set and, if fitted, its attack model; anything
else implements ``run``); modules in this package are imported automatically, and the privacy
audit, its table, the app's panel and the ROC plot pick it up.
"""
import importlib
import pkgutil

from .base import (
    AttackResult,
    Calibration,
    MembershipAttack,
    ModelOutputs,
    References,
    ScoreAttack,
    attack_class,
    create_attack,
    list_attacks,
    param,
    register_attack,
)
from .functional import (
    BOOTSTRAP,
    FPR_LEVELS,
    STREISAND_AUC,
    STREISAND_BEYOND,
    FittedAttack,
    Roc,
    auc_rank,
    beyond_retrain,
    bootstrap_intervals,
    centroid_similarity,
    entropy,
    fit_attack,
    histograms,
    label_log_prob,
    resolvable,
    rmia_scores,
    roc,
    roc_summary,
    salun_features,
    shokri_features,
    streisand,
    support_distances,
    tpr_at_fpr,
    tug_of_war,
    unlearn_score,
    youden_threshold,
)

for _module in pkgutil.iter_modules(__path__):
    if _module.name not in ("base", "functional"):
        importlib.import_module(f"{__name__}.{_module.name}")

__all__ = [
    "BOOTSTRAP",
    "FPR_LEVELS",
    "STREISAND_AUC",
    "STREISAND_BEYOND",
    "AttackResult",
    "Calibration",
    "FittedAttack",
    "MembershipAttack",
    "ModelOutputs",
    "References",
    "Roc",
    "ScoreAttack",
    "attack_class",
    "auc_rank",
    "beyond_retrain",
    "bootstrap_intervals",
    "centroid_similarity",
    "create_attack",
    "entropy",
    "fit_attack",
    "histograms",
    "label_log_prob",
    "list_attacks",
    "param",
    "register_attack",
    "resolvable",
    "rmia_scores",
    "roc",
    "roc_summary",
    "salun_features",
    "shokri_features",
    "streisand",
    "support_distances",
    "tpr_at_fpr",
    "tug_of_war",
    "unlearn_score",
    "youden_threshold",
]
