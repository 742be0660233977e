"""Metering and billing: the durable usage journal, pricing, hourly aggregation, credits,
Stripe meter exports, Stripe webhooks and usage reports (docs/billing.md).

Kept import-light: ``fleet.tables`` imports :mod:`fleet.billing.tables` at load time.
"""
