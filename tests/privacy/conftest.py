"""Fixtures shared with the protocol tests (the FL acceptance data set)."""

from tests.protocols.fl.conftest import breast_cancer

__all__ = ["breast_cancer"]
