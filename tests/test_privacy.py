"""The privacy audit on real faces (small LFW workspace): attack power on the original model, the
retrain reference as the non-member baseline, and the Streisand flag on over-forgetting."""
from __future__ import annotations

import json

import numpy as np
import pytest

from unlearn_core import viz
from unlearn_core.attacks import ScoreAttack, attack_class
from unlearn_core.audit import run_audit
from unlearn_core.pipeline import AuditConfig, Workspace
from unlearn_core.privacy import REPORTED_ATTACKS, format_privacy_table, privacy_audit

SCORE_ATTACKS = [a for a in REPORTED_ATTACKS if issubclass(attack_class(a), ScoreAttack)]
"""The attacks calibrated on members vs non-members (every block has rates and two ROCs)."""


@pytest.fixture(scope="module")
def original_audit(lfw_workspace: Workspace) -> dict:
    """The original model audited against the retrain reference."""
    return privacy_audit(lfw_workspace, lfw_workspace.original)


def fractions(block: dict) -> list[float]:
    """Every rate and ROC value in an attack block."""
    values = [block[k] for k in ("member_test_rate", "nonmember_rate", "forget_member_rate", "forget_heldout_member_rate")]
    for key in ("members_vs_nonmembers", "forget_vs_heldout"):
        values += [block[key]["auc"], *block[key]["tpr_at_fpr"].values(), *block[key]["roc"]["fpr"], *block[key]["roc"]["tpr"]]
    return values


def test_report_is_json_with_fractions_side_by_side(original_audit):
    json.loads(json.dumps(original_audit, allow_nan=False))
    assert SCORE_ATTACKS == ["shokri", "salun", "embedding"]
    for attack in SCORE_ATTACKS:
        for who in ("unlearned", "retrain"):
            assert all(0.0 <= v <= 1.0 for v in fractions(original_audit[attack][who])), (attack, who)
    for metric in ("entropy", "loss"):
        for who in ("unlearned", "retrain"):
            for values in original_audit["distributions"][metric][who].values():
                assert sum(values) == pytest.approx(1.0)
    assert original_audit["n_images"]["unseen"] == 100


def test_attack_separates_members_from_nonmembers_on_the_original(original_audit):
    shokri = original_audit["shokri"]["unlearned"]
    assert shokri["nonmembers"] == ["test", "unseen"]
    assert shokri["members_vs_nonmembers"]["auc"] > 0.65
    assert shokri["member_test_rate"] > shokri["nonmember_rate"] + 0.2
    # the original still holds the forget identities: the attack calls most of them members
    assert shokri["forget_member_rate"] > 0.5
    assert original_audit["streisand"]["flag"] is False


def test_retrain_reference_makes_forget_images_look_like_nonmembers(original_audit):
    for attack in ("shokri", "salun"):
        original, retrain = original_audit[attack]["unlearned"], original_audit[attack]["retrain"]
        assert retrain["forget_member_rate"] <= retrain["nonmember_rate"] + 0.05, attack
        assert retrain["forget_member_rate"] < original["forget_member_rate"], attack
        # the original is far from its own reference: almost all forget images score higher there
        assert original_audit[attack]["beyond_retrain"] < 0.2, attack
    # RMIA against the retrain reference (the retrain row compares that model with itself, AUC 0.5 by
    # construction): the original, trained on the forget images, still scores them above held-out ones (0.54)
    assert original_audit["rmia"]["unlearned"]["forget_vs_heldout"]["auc"] > 0.5
    assert original_audit["unlearn_score"]["retrain"]["acc_forget"] == 0.0


def test_over_forgetting_triggers_the_streisand_flag(lfw_workspace):
    """Dispersion with a 20x learning rate scatters the forget identities far beyond what the
    retrain model (which never saw them) does: the audit must say so."""
    config = AuditConfig(method="dispersion", params={"lr": 2e-3}, iterations=50)
    report = run_audit(config, workspace=lfw_workspace)
    privacy = report["privacy"]
    assert privacy["streisand"]["flag"] is True
    assert any(r.startswith("embedding:") for r in privacy["streisand"]["reasons"])
    assert privacy["embedding"]["unlearned"]["forget_member_rate"] < privacy["embedding"]["retrain"]["forget_member_rate"]
    gaps = np.array(privacy["hardness"]["map_gap"])
    assert len(gaps) == 4 and (gaps < 0).all()  # every forget identity retrieved worse than under retrain
    table = format_privacy_table(privacy)
    assert "Streisand flag: embedding:" in table and "tug of war" in table
    panel = viz.privacy_html({"dispersion": privacy})
    assert "⚠️ Streisand flag: embedding:" in panel and panel.count("<b>") == len(REPORTED_ATTACKS)
    roc = viz.roc_figure({"dispersion": privacy})
    drawn = [t for t in roc.data if t.showlegend is False]
    assert len(drawn) == 2 * len(REPORTED_ATTACKS)  # each attack: the unlearned model and the retrain reference
    assert {t.line.dash for t in drawn} == {"solid", "dash"} and len({t.line.color for t in drawn}) == len(REPORTED_ATTACKS)
    assert [t.name for t in roc.data if t.showlegend is not False] == [*REPORTED_ATTACKS, "dispersion", "retrain reference", "chance"]
    json.dumps(report)
    assert "privacy" not in run_audit(AuditConfig(method="dispersion", iterations=1, privacy=False), workspace=lfw_workspace)
