"""gbp_lab.core.gsp"""
