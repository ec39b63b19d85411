"""What each pipeline costs in AWS, answered from the history opsboard already stores.

`prices` reads the region price table (shipped in prices.json, replaceable with SPEND_PRICES_FILE);
`formula` turns one day of a pipeline's readings into a cost per service, each part known or
unknown, never a guessed zero; `history` reads those days for many pipelines in a few grouped
queries and sums them into the figures the pages show.
"""
