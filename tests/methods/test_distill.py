"""The shared distillation loss."""
import pytest
import torch

from unlearn_core.methods.distill import kl_to_teacher

pytestmark = pytest.mark.fast


def test_kl_is_zero_for_identical_logits_and_positive_otherwise():
    g = torch.Generator().manual_seed(0)
    student, teacher = torch.randn(5, 7, generator=g), torch.randn(5, 7, generator=g)
    assert float(kl_to_teacher(student, student, 4.0)) < 1e-6
    assert float(kl_to_teacher(student, teacher, 1.0)) > 0


def test_kl_differentiates_the_student_only():
    g = torch.Generator().manual_seed(1)
    student = torch.randn(5, 7, generator=g).requires_grad_(True)
    teacher = torch.randn(5, 7, generator=g).requires_grad_(True)
    kl_to_teacher(student, teacher, 2.0).backward()
    assert teacher.grad is None and float(student.grad.abs().sum()) > 0
