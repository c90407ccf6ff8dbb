using Serve.Actors.Protocol;

namespace Serve.Actors.Registry;

/// <summary>What a command decided: the events to persist, or why it was refused, and the answer's text.</summary>
public sealed record Decision(RegistryEvent[] Events, RegistryResult Result)
{
    public static Decision Refuse(ServeErrorKind kind, string message) => new([], RegistryResult.Refused(kind, message));

    public static Decision Refuse(ServeError error) => Refuse(error.Kind, error.Message);
}

/// <summary>
/// The registry's desired state (model versions with their settings and replica counts, and each model's
/// default version) and the rules that change it, as pure functions: a command gives a
/// <see cref="Decision"/> (events or a refusal, with TorchServe's messages); events are applied to change
/// the state, on the live path and on recovery alike.
/// </summary>
public sealed class DesiredState
{
    private readonly Dictionary<ModelKey, ModelDefinition> _models = [];
    private readonly Dictionary<string, string> _defaults = new(StringComparer.Ordinal);

    // Each start-up model as the configuration last gave it.
    private readonly Dictionary<ModelKey, ModelDefinition> _configured = [];

    private readonly SortedDictionary<string, TenantDefinition> _tenants = new(StringComparer.Ordinal);

    /// <summary>Enough for a rotation or two in progress; a tenant is not a key store.</summary>
    public const int MaxKeysPerTenant = 8;

    public IReadOnlyCollection<ModelDefinition> Models => _models.Values;

    public IReadOnlyCollection<TenantDefinition> Tenants => _tenants.Values;

    /// <summary>Creates a tenant (the gateway has checked its settings and its id against configured tenants).</summary>
    public Decision DefineTenant(TenantDefinition tenant) => _tenants.ContainsKey(tenant.Id)
        ? Decision.Refuse(ServeErrorKind.Conflict, $"Tenant \"{tenant.Id}\" already exists")
        : new([new TenantDefined(tenant)], RegistryResult.Done($"Tenant \"{tenant.Id}\" defined"));

    /// <summary>Changes a tenant's settings (checked by the gateway); its keys stay.</summary>
    public Decision UpdateTenant(UpdateTenant update) => _tenants.TryGetValue(update.Id, out var tenant)
        ? new([new TenantDefined(update.ApplyTo(tenant))], RegistryResult.Done($"Tenant \"{update.Id}\" updated"))
        : Decision.Refuse(ServeErrors.TenantNotFound(update.Id));

    /// <summary>Adds a key to a tenant, so clients can move to it before the old one is revoked.</summary>
    public Decision AddTenantKey(AddTenantKey add)
    {
        if (!_tenants.TryGetValue(add.Id, out var tenant))
        {
            return Decision.Refuse(ServeErrors.TenantNotFound(add.Id));
        }

        if (tenant.KeySha256.Length >= MaxKeysPerTenant)
        {
            return Decision.Refuse(ServeErrorKind.Conflict,
                $"Tenant \"{add.Id}\" already has {MaxKeysPerTenant} keys, the most it may have; revoke one first");
        }

        return new([new TenantDefined(tenant with { KeySha256 = [.. tenant.KeySha256, add.KeySha256] })],
            RegistryResult.Done($"Tenant \"{add.Id}\" has a new key with id {TenantDefinition.KeyIdOf(add.KeySha256)}"));
    }

    /// <summary>Revokes one of a tenant's keys; its last key stays (delete the tenant to lock it out).</summary>
    public Decision RevokeTenantKey(RevokeTenantKey revoke)
    {
        if (!_tenants.TryGetValue(revoke.Id, out var tenant))
        {
            return Decision.Refuse(ServeErrors.TenantNotFound(revoke.Id));
        }

        var kept = tenant.KeySha256.Where(hash => !string.Equals(TenantDefinition.KeyIdOf(hash), revoke.KeyId, StringComparison.OrdinalIgnoreCase)).ToArray();
        if (kept.Length == tenant.KeySha256.Length)
        {
            return Decision.Refuse(ServeErrorKind.NotFound, $"Tenant \"{revoke.Id}\" has no key with id {revoke.KeyId}");
        }

        return kept.Length == 0
            ? Decision.Refuse(ServeErrorKind.Conflict,
                $"Key {revoke.KeyId} is tenant \"{revoke.Id}\"'s only key; add another first, or delete the tenant")
            : new([new TenantDefined(tenant with { KeySha256 = kept })], RegistryResult.Done($"Key {revoke.KeyId} of tenant \"{revoke.Id}\" revoked"));
    }

    /// <summary>
    /// Removes a tenant that owns no model (models are owned by the tenant's id, and a tenant created later
    /// with the same id must not inherit them: unregister them first). Sharing with it ends (see <see cref="Apply"/>).
    /// </summary>
    public Decision RemoveTenant(string id)
    {
        if (!_tenants.ContainsKey(id))
        {
            return Decision.Refuse(ServeErrors.TenantNotFound(id));
        }

        var owned = _models.Keys.Where(k => _models[k].Owner == id).Select(k => k.ToString()).Order(StringComparer.Ordinal).ToList();
        return owned.Count == 0
            ? new Decision([new TenantRemoved(id)], RegistryResult.Done($"Tenant \"{id}\" removed"))
            : Decision.Refuse(ServeErrorKind.Conflict,
                $"Tenant \"{id}\" owns {owned.Count} model version(s): {string.Join(", ", owned.Take(10))}{(owned.Count > 10 ? ", ..." : string.Empty)}; " +
                "unregister them first (a tenant created later with this id must not inherit them)");
    }

    public ModelDefinition? Find(ModelKey key) => _models.GetValueOrDefault(key);

    public string? DefaultVersion(string model) => _defaults.GetValueOrDefault(model);

    public bool IsDefault(ModelDefinition definition) => DefaultVersion(definition.Name) == definition.Version;

    /// <summary>
    /// Registers a new version (TorchServe: 409 when it exists). Start-up models (<paramref name="fromConfiguration"/>)
    /// are registered again by every gateway at every start. The same configuration as last time changes
    /// nothing, so what the management API changed since (replicas scaled, for instance) stays; a changed
    /// configuration replaces the registered definition, since the configuration that names a model defines it.
    /// </summary>
    public Decision Register(ModelDefinition definition, bool fromConfiguration, TenantLimits? limits = null)
    {
        var problems = definition.Validate();
        if (problems.Count > 0)
        {
            return Decision.Refuse(ServeErrorKind.BadInput, string.Join("; ", problems));
        }

        // The management API names files in the model store only; an absolute path can come from an
        // operator's start-up configuration alone, so one in any other command is refused whoever sent it.
        if (!fromConfiguration && definition.Files.FirstOrDefault(Path.IsPathRooted) is { } rooted)
        {
            return Decision.Refuse(ServeErrorKind.BadInput,
                $"model file '{rooted}' is an absolute path: models registered at run time are named relative to the model store");
        }

        if (!_models.ContainsKey(definition.Key) && OverQuota(limits, added: definition, replaced: null) is { } overQuota)
        {
            return overQuota;
        }

        if (_models.TryGetValue(definition.Key, out var existing))
        {
            if (!fromConfiguration)
            {
                return Decision.Refuse(ServeErrorKind.Conflict,
                    $"Model version {definition.Version} is already registered for model {definition.Name}");
            }

            if (_configured.GetValueOrDefault(definition.Key) == definition)
            {
                return new Decision([], RegistryResult.Done(Registered(existing)));
            }
        }

        return new Decision([new ModelVersionRegistered(definition, fromConfiguration)], RegistryResult.Done(Registered(definition)));
    }

    /// <summary>Start-up models as the configuration last registered them.</summary>
    public IReadOnlyCollection<ModelKey> Configured => _configured.Keys;

    /// <summary>
    /// Unregisters a start-up model the configuration no longer names. When it was the default version and
    /// other versions stay (registered through the management API), the highest of them becomes the default.
    /// </summary>
    public RegistryEvent[] ForgetConfigured(ModelKey key)
    {
        if (!_configured.ContainsKey(key))
        {
            return [];
        }

        RegistryEvent[] removed = [new ModelVersionUnregistered(key)];
        var others = _models.Keys.Where(k => k.Name == key.Name && k != key).Select(k => k.Version).ToList();
        return DefaultVersion(key.Name) == key.Version && others.Count > 0
            ? [.. removed, new DefaultVersionSet(key.Name, others.Max(StringComparer.Ordinal)!)]
            : removed;
    }

    public Decision Unregister(string model, string? version)
    {
        if (Resolve(model, version) is not { } definition)
        {
            return NotFound(model, version);
        }

        var versions = _models.Keys.Count(k => k.Name == model);
        if (IsDefault(definition) && versions > 1)
        {
            return Decision.Refuse(ServeErrorKind.Forbidden, $"Cannot remove default version for model {model}");
        }

        return new Decision([new ModelVersionUnregistered(definition.Key)], RegistryResult.Done($"Model \"{model}\" unregistered"));
    }

    public Decision Scale(string model, string? version, int replicas, TenantLimits? limits = null)
    {
        if (Resolve(model, version) is not { } definition)
        {
            return NotFound(model, version);
        }

        if (definition.WithReplicas(replicas).Validate() is { Count: > 0 } problems)
        {
            return Decision.Refuse(ServeErrorKind.BadInput, string.Join("; ", problems));
        }

        if (replicas > definition.Replicas && OverQuota(limits, added: definition.WithReplicas(replicas), replaced: definition) is { } overQuota)
        {
            return overQuota;
        }

        var message = version is null
            ? $"Workers scaled to {replicas} for model: {model}"
            : $"Workers scaled to {replicas} for model: {model}, version: {version}";
        return definition.Replicas == replicas
            ? new Decision([], RegistryResult.Done(message))
            : new Decision([new ModelVersionScaled(definition.Key, replicas)], RegistryResult.Done(message));
    }

    public Decision Place(ChangePlacement change)
    {
        var (model, version) = (change.Model, change.Version);
        if (Resolve(model, version) is not { } definition)
        {
            return NotFound(model, version);
        }

        var (placement, deviceMemoryMb) = change.Over(definition.Placement, definition.DeviceMemoryMb);
        var placed = definition with { Placement = placement, DeviceMemoryMb = deviceMemoryMb };
        if (placed.Validate() is { Count: > 0 } problems)
        {
            return Decision.Refuse(ServeErrorKind.BadInput, string.Join("; ", problems));
        }

        var message = $"Placement of model \"{model}\" version {version} set to {placement} with {deviceMemoryMb} MB of device memory per replica";
        return placed == definition
            ? new Decision([], RegistryResult.Done(message))
            : new Decision([new ModelVersionPlaced(definition.Key, placement, deviceMemoryMb)], RegistryResult.Done(message));
    }

    public Decision SetDefault(string model, string version)
    {
        if (!_models.ContainsKey(new ModelKey(model, version)))
        {
            return Decision.Refuse(_models.Keys.Any(k => k.Name == model)
                ? ServeErrors.DefaultVersionNotFound(model, version)
                : ServeErrors.ModelNotFound(model));
        }

        var message = $"Default version successfully updated for model \"{model}\" to \"{version}\"";
        return DefaultVersion(model) == version
            ? new Decision([], RegistryResult.Done(message))
            : new Decision([new DefaultVersionSet(model, version)], RegistryResult.Done(message));
    }

    public void Apply(RegistryEvent change)
    {
        switch (change)
        {
            case ModelVersionRegistered registered:
                _models[registered.Definition.Key] = registered.Definition;
                _defaults.TryAdd(registered.Definition.Name, registered.Definition.Version);
                if (registered.FromConfiguration)
                {
                    _configured[registered.Definition.Key] = registered.Definition;
                }

                break;
            case ModelVersionUnregistered unregistered:
                _models.Remove(unregistered.Key);
                _configured.Remove(unregistered.Key);
                if (_defaults.GetValueOrDefault(unregistered.Key.Name) == unregistered.Key.Version)
                {
                    _defaults.Remove(unregistered.Key.Name);
                }

                break;
            case ModelVersionScaled scaled when _models.TryGetValue(scaled.Key, out var definition):
                _models[scaled.Key] = definition.WithReplicas(scaled.Replicas);
                break;
            case ModelVersionPlaced placed when _models.TryGetValue(placed.Key, out var definition):
                _models[placed.Key] = definition with { Placement = placed.Placement, DeviceMemoryMb = placed.DeviceMemoryMb };
                break;
            case DefaultVersionSet set:
                _defaults[set.Model] = set.Version;
                break;
            case TenantDefined defined:
                _tenants[defined.Tenant.Id] = defined.Tenant;
                break;
            case TenantRemoved removed:
                _tenants.Remove(removed.Id);
                // Sharing with the removed tenant ends, so a tenant created later with its id is not shared with.
                foreach (var (key, model) in _models.Where(m => m.Value.SharedWithTenants.Contains(removed.Id, StringComparer.Ordinal)).ToList())
                {
                    _models[key] = model with { SharedWith = string.Join(',', model.SharedWithTenants.Where(t => t != removed.Id)) };
                }

                break;
        }
    }

    public RegistrySnapshot ToSnapshot() => new(
        [.. _models.Values.OrderBy(d => d.Key.ToString(), StringComparer.Ordinal)],
        [.. _defaults.OrderBy(d => d.Key, StringComparer.Ordinal).Select(d => new DefaultVersion(d.Key, d.Value))],
        [.. _configured.Values.OrderBy(d => d.Key.ToString(), StringComparer.Ordinal)])
    {
        Tenants = [.. _tenants.Values],
    };

    /// <summary>A copy to try changes on (validation, trial placement) without touching this one.</summary>
    public DesiredState Copy()
    {
        var copy = new DesiredState();
        copy.Restore(ToSnapshot());
        return copy;
    }

    public void Restore(RegistrySnapshot snapshot)
    {
        _models.Clear();
        _defaults.Clear();
        _configured.Clear();
        _tenants.Clear();
        foreach (var tenant in snapshot.Tenants ?? [])
        {
            _tenants[tenant.Id] = tenant;
        }

        foreach (var definition in snapshot.Models)
        {
            _models[definition.Key] = definition;
        }

        foreach (var definition in snapshot.Configured)
        {
            _configured[definition.Key] = definition;
        }

        foreach (var version in snapshot.Defaults)
        {
            _defaults[version.Model] = version.Version;
        }
    }

    private ModelDefinition? Resolve(string model, string? version) =>
        Find(new ModelKey(model, version ?? DefaultVersion(model) ?? string.Empty));

    private Decision NotFound(string model, string? version) =>
        Decision.Refuse(ServeErrors.NotFound(model, version, modelExists: _models.Keys.Any(k => k.Name == model)));

    /// <summary>
    /// The refusal when the owner's models after the change (<paramref name="added"/> in place of
    /// <paramref name="replaced"/>) would exceed one of its quotas; null when they fit.
    /// </summary>
    private Decision? OverQuota(TenantLimits? limits, ModelDefinition added, ModelDefinition? replaced)
    {
        if (limits is null || limits == TenantLimits.None)
        {
            return null;
        }

        var owned = _models.Values.Where(m => m.Owner == limits.Tenant && m.Key != replaced?.Key).Append(added).ToList();
        var replicas = owned.Sum(m => m.Replicas);
        var memory = owned.Sum(m => m.DeclaredMemoryMb);
        var tenant = limits.Tenant;
        if (limits.MaxModels > 0 && owned.Count > limits.MaxModels)
        {
            return Decision.Refuse(ServeErrorKind.QuotaExceeded,
                $"Tenant \"{tenant}\" would have {owned.Count} model versions registered, more than its MaxModels quota of {limits.MaxModels}");
        }

        if (limits.MaxReplicas > 0 && replicas > limits.MaxReplicas)
        {
            return Decision.Refuse(ServeErrorKind.QuotaExceeded,
                $"Tenant \"{tenant}\" would have {replicas} replicas, more than its MaxReplicas quota of {limits.MaxReplicas}");
        }

        if (limits.MaxDeviceMemoryMb > 0 && memory > limits.MaxDeviceMemoryMb)
        {
            return Decision.Refuse(ServeErrorKind.QuotaExceeded,
                $"Tenant \"{tenant}\" would declare {memory} MB of device memory, more than its MaxDeviceMemoryMb quota of {limits.MaxDeviceMemoryMb}");
        }

        return null;
    }

    /// <summary>TorchServe's answer to a registration that happened.</summary>
    public static string Registered(ModelDefinition definition) =>
        definition.Replicas == 0
            ? $"Model \"{definition.Name}\" Version: {definition.Version} registered with 0 initial workers. Use scale workers API to add workers for the model."
            : $"Model \"{definition.Name}\" Version: {definition.Version} registered with {definition.Replicas} initial workers";
}
