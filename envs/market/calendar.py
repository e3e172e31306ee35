"""The calendar constants: how many rows of daily data make a year.

Two years are in use, and they differ on purpose:

- ``BUSINESS_DAYS_PER_YEAR`` (261, weekdays): the synthetic market's rows are business days, so
  a year of them is 261 rows; returns measured per row annualise with it (vol, Sharpe, CAGR,
  annual turnover).
- ``TRADING_DAYS_PER_YEAR`` (252, exchange sessions): the trend-following convention for
  "a year" of lookback (12-month momentum, the warm-up year) and the differential Sharpe's
  default rate, 1/252.
"""

from __future__ import annotations

BUSINESS_DAYS_PER_YEAR = 261
TRADING_DAYS_PER_YEAR = 252
