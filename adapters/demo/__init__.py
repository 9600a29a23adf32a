"""The demo systems: a BC-like ERP and a Dataverse-like CRM on SQLite, with sample data."""
