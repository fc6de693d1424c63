"""The datacenter baseline: a campaign's jobs on this host's GPU, through the fleet's scheduler."""
