"""The forge cycle: data → features → labels → bake-off → GP → gauntlet → registry → report."""
