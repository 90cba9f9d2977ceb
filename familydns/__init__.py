"""familydns: a parental-control DNS filtering resolver."""

__version__ = "0.1.0"
