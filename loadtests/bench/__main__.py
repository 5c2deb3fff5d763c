"""`python -m loadtests.bench`: run the benchmark (loadtests/bench/driver.py)."""

from loadtests.bench.driver import main

raise SystemExit(main())
