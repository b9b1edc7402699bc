"""The benchmark (`make bench`): a generator of realistic exports, syncd end to end, the database's baselines."""
