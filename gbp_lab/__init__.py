"""gbp-lab: explore, dissect and teach the Group Protocol Stack."""
__version__ = "0.1.0"
