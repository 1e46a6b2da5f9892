"""Typer commands only: parse, call the API, render, return an exit code."""
