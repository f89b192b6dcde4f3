"""Dataset specs (YAML), one per dataset; installed as the package data folder ``phi3v_data.specs``."""
