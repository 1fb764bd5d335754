"""The decision feed: events out of the store, to a webhook or a reader.

Every change of an order's status is an event with an ascending id. `signing` signs and checks a batch as the
Standard Webhooks spec says; `webhook` posts one batch until the receiver takes it, refuses it, or time runs out.
"""
