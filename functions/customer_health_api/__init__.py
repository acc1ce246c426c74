"""Customer Health API (Customer Health Service): explainable health scores per organization and tenant."""
