"""Helpers shared by the tests: scripted clients, stub servers, fixtures made or shipped here."""
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
FIXTURES = Path(__file__).resolve().parent / "fixtures"
