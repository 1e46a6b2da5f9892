"""What a run will do, decided in the parent before anything is measured: the input plan
(:mod:`.inputs`) and the one rule for a free batch dim (:mod:`.batch`)."""
