"""Learning on crystal invariants. Pure numerics: no AiiDA import."""
from .descriptors import DESCRIPTORS, SiteTable, describe, describe_spec, descriptor_defaults, descriptor_names, site_table
