"""Floor 1: the recommender's algorithms and state, in plain Python and numpy.

Nothing here imports Kafka, Faust, Redis or anything from ``stream``, ``web``, ``producers``
or ``liverec``: the same code runs embedded and distributed.
"""
