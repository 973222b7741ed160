"""R4 Subscriptions (rest-hook): criteria checked inside the writing unit, an outbox committed
with the change, and a delivery worker (docs/subscriptions.md)."""
