"""syncd: applies 1C settlements exports to Bitrix highload blocks."""

__version__ = "0.3.0.dev0"
