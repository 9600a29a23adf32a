"""The demo systems' tables: an ERP shaped like Business Central, a CRM shaped like Dataverse."""

from __future__ import annotations

import sqlalchemy as sa

Money = sa.Numeric(18, 2)
Moment = sa.DateTime()

erp = sa.MetaData()


def _erp_table(name: str, key: str, *columns: sa.Column[object]) -> sa.Table:
    return sa.Table(
        name,
        erp,
        sa.Column(key, sa.String(20), primary_key=True),
        *columns,
        sa.Column("system_id", sa.String(36), nullable=False),
        sa.Column("last_modified", Moment, nullable=False),
    )


_erp_table("currency", "code", sa.Column("description", sa.String(100)), sa.Column("symbol", sa.String(10)))
_erp_table(
    "salesperson",
    "code",
    sa.Column("name", sa.String(100)),
    sa.Column("email", sa.String(100)),
    sa.Column("phone", sa.String(30)),
)
_erp_table(
    "payment_terms", "code", sa.Column("description", sa.String(100)), sa.Column("due_days", sa.Integer)
)
_erp_table(
    "customer",
    "no",
    sa.Column("name", sa.String(100), nullable=False),
    sa.Column("address", sa.String(100)),
    sa.Column("city", sa.String(50)),
    sa.Column("post_code", sa.String(20)),
    sa.Column("country_code", sa.String(10)),
    sa.Column("phone", sa.String(30)),
    sa.Column("email", sa.String(80)),
    sa.Column("website", sa.String(80)),
    sa.Column("currency_code", sa.String(10)),
    sa.Column("salesperson_code", sa.String(20)),
    sa.Column("payment_terms_code", sa.String(10)),
    sa.Column("credit_limit", Money),
    sa.Column("blocked", sa.Boolean, nullable=False, server_default=sa.false()),
)
_erp_table(
    "contact",
    "no",
    sa.Column("type", sa.String(10), nullable=False),
    sa.Column("first_name", sa.String(30)),
    sa.Column("surname", sa.String(30)),
    sa.Column("job_title", sa.String(50)),
    sa.Column("email", sa.String(80)),
    sa.Column("phone", sa.String(30)),
    sa.Column("mobile", sa.String(30)),
    sa.Column("customer_no", sa.String(20)),
)
_erp_table(
    "item",
    "no",
    sa.Column("description", sa.String(100), nullable=False),
    sa.Column("base_unit", sa.String(10)),
    sa.Column("unit_price", Money),
    sa.Column("unit_cost", Money),
    sa.Column("blocked", sa.Boolean, nullable=False, server_default=sa.false()),
)

crm = sa.MetaData()


def _crm_table(name: str, key: str, *columns: sa.Column[object]) -> sa.Table:
    return sa.Table(
        name,
        crm,
        sa.Column(key, sa.String(36), primary_key=True),
        *columns,
        sa.Column("statecode", sa.Integer, nullable=False, server_default="0"),
        sa.Column("modifiedon", Moment, nullable=False),
    )


_crm_table(
    "transactioncurrency",
    "transactioncurrencyid",
    sa.Column("isocurrencycode", sa.String(5), nullable=False),
    sa.Column("currencyname", sa.String(100)),
    sa.Column("currencysymbol", sa.String(10)),
)
_crm_table(
    "systemuser",
    "systemuserid",
    sa.Column("fullname", sa.String(100)),
    sa.Column("internalemailaddress", sa.String(100)),
    sa.Column("mobilephone", sa.String(30)),
)
sa.Table(
    "paymenttermscode_option",
    crm,
    sa.Column("value", sa.Integer, primary_key=True),
    sa.Column("label", sa.String(100)),
    sa.Column("modifiedon", Moment, nullable=False),
)
_crm_table(
    "account",
    "accountid",
    sa.Column("name", sa.String(160), nullable=False),
    sa.Column("accountnumber", sa.String(20)),
    sa.Column("address1_line1", sa.String(250)),
    sa.Column("address1_city", sa.String(80)),
    sa.Column("address1_postalcode", sa.String(20)),
    sa.Column("address1_country", sa.String(80)),
    sa.Column("telephone1", sa.String(50)),
    sa.Column("emailaddress1", sa.String(100)),
    sa.Column("websiteurl", sa.String(200)),
    sa.Column("transactioncurrencyid", sa.String(36)),
    sa.Column("ownerid", sa.String(36)),
    sa.Column("paymenttermscode", sa.Integer),
    sa.Column("creditlimit", Money),
    sa.Column("customertypecode", sa.Integer),
)
_crm_table(
    "contact",
    "contactid",
    sa.Column("firstname", sa.String(50)),
    sa.Column("lastname", sa.String(50)),
    sa.Column("jobtitle", sa.String(100)),
    sa.Column("emailaddress1", sa.String(100)),
    sa.Column("telephone1", sa.String(50)),
    sa.Column("mobilephone", sa.String(50)),
    sa.Column("parentcustomerid", sa.String(36)),
)
_crm_table(
    "product",
    "productid",
    sa.Column("productnumber", sa.String(100), nullable=False),
    sa.Column("name", sa.String(100)),
    sa.Column("defaultuom", sa.String(10)),
    sa.Column("price", Money),
    sa.Column("standardcost", Money),
)
