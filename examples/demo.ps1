Write-Host "demo placeholder"
