"""What a run knows about the model it measures, computed once (:mod:`.facts`)."""
