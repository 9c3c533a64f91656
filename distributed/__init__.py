"""The distributed runtime: Kafka in, Faust workers, shared state in Redis, stateless web nodes.

Floor 4 (``docs/architecture.md``): it builds on the pipeline (``stream``, ``online_models``)
and the page (``web``), and only ``liverec`` wires it. The embedded runtime never imports it.

* :mod:`distributed.store_api`: what the runtime needs of its shared store, implemented in
  Redis by :mod:`distributed.row_log`, :mod:`distributed.batch_apply` and
  :mod:`distributed.store` (the row-log codec, the exactly-once batch apply, the reads), and in
  memory by :mod:`distributed.memory_store`;
* :mod:`distributed.kafka_bus`, :mod:`distributed.transport`: the topic and Faust's consumer;
* :mod:`distributed.batch_loop`: a worker's batch loop (:class:`~distributed.batch_loop.
  BatchLoop`), with the batch as data (:mod:`distributed.batch`), the work apart from the loop
  (:mod:`distributed.background`), its counters (:mod:`distributed.worker_stats`) and its
  answers to a failing Redis (:mod:`distributed.retry`); :mod:`distributed.worker` wires it to
  Faust and Redis;
* :mod:`distributed.serving`: lists computed from the shared state, as a worker or a web node
  serves them;
* :mod:`distributed.web_backend`: a web node's backend (lists from Redis, events to Kafka).
"""
