"""The performance benchmark (`python -m loadtests.bench`, `make bench`): open-loop load
against real serves, each figure beside a baseline from the same run."""
