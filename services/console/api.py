"""The console's pages, one module per kind of work; the app includes every router listed
here, each behind the same form guard (``csrf.guard``)."""

from __future__ import annotations

from fastapi import APIRouter

from services.console import alerts, cases, office, opinion, signin, stories

ROUTERS: tuple[APIRouter, ...] = (
    signin.router,
    stories.router,
    cases.router,
    office.router,
    alerts.router,
    opinion.router,  # opinion items and briefings
)
