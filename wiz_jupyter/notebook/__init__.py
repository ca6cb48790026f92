"""The notebook surface: %wiz magics and widgets. Imported by ``%load_ext wiz_jupyter``."""
