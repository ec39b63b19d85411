"""Service-level objectives: what share of a pipeline's recent history met its objectives, how much
error budget is left and how fast it burns, from the history opsboard already stores.

`windows` reads the counts (a bounded number of queries for any number of pipelines and any
window), `compute` turns counts into compliance, budget and burn (pure), and `burn` is what the
rule table's burn-rate rules call.
"""
