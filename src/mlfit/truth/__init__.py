"""The device truth store: figures measured on the user's own devices, kept and learnt from (issue 25).

:mod:`.schema` the store's and the fit file's formats; :mod:`.store` where they live, bounded reads,
atomic writes; :mod:`.rows` rows from result files; :mod:`.fit` refit a device and the fits a
projection uses. The fitting itself is pure (:mod:`mlfit.analysis.deviceadapt`)."""
