"""HTTP routes, one Powertools ``Router`` per Lambda function (the OpenAPI document includes them all)."""
