"""The demo, apart from the product: an emulated AWS (moto in server mode), a simulator that plays
the API, the consumer and the metrics AWS would publish, provisioning, a webhook receiver, and
`manage.py demo`, which starts it all. Installed with the `emulator` extra."""
