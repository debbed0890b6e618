# Loaded by every Python subprocess started by the tests (PYTHONPATH): block non-local network access.
import netguard

netguard.install()
