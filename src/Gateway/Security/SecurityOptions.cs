namespace Serve.Gateway.Security;

/// <summary>
/// Token authorization (section <c>Serve:Security</c>), on by default. Keys follow TorchServe's
/// key_file.json; TorchServe's config keys are disable_token_authorization and token_expiration_min.
/// </summary>
public sealed class SecurityOptions
{
    public const string Section = "Serve:Security";

    /// <summary>
    /// Turns token authorization off (TorchServe's disable_token_authorization). Every API then answers anyone
    /// who can reach its listener; Serve logs a warning at start-up. Env: Serve__Security__DisableTokenAuthorization.
    /// </summary>
    public bool DisableTokenAuthorization { get; set; }

    /// <summary>Minutes the inference and management keys stay valid (TorchServe's token_expiration_min). Env: Serve__Security__TokenExpirationMinutes.</summary>
    public double TokenExpirationMinutes { get; set; } = 60;

    /// <summary>Where the keys are kept; default <c>key_file.json</c> in Serve:DataDirectory. Env: Serve__Security__KeyFile.</summary>
    public string? KeyFile { get; set; }

    public IReadOnlyList<string> Validate() => TokenExpirationMinutes is > 0 and <= 525_600
        ? []
        : [$"Serve:Security:TokenExpirationMinutes (token_expiration_min) must be more than 0 and at most a year, not {TokenExpirationMinutes}"];
}
