"""The suites the harness ships: installed as the package data ``harness_suites``, so
``harness run demo`` finds ``demo.yaml`` from any folder (``harness list suites``)."""
