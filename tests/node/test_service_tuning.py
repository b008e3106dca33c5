from __future__ import annotations

import gc
import platform

import pytest

from privledger.node.service import freeze_startup_objects, tune_allocator


@pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="mallopt is glibc's")
def test_allocator_tuning_is_accepted_by_glibc() -> None:
    assert tune_allocator() is True


def test_start_up_objects_leave_the_collectors_sight() -> None:
    before = gc.get_freeze_count()
    try:
        freeze_startup_objects()
        assert gc.get_freeze_count() > before
    finally:
        gc.unfreeze()
