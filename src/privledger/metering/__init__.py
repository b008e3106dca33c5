"""Value allocation: provenance weights for settling a task's fee."""
