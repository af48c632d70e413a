"""Whole workflows over several stages: ``mammoscreen run`` (:mod:`.pipeline`), its evaluation and localisation
(:mod:`.run_evaluation`) and the demo (:mod:`.demo`). They sit above the engine, the evaluation and the report,
and below the command line, which only parses arguments and calls them."""
