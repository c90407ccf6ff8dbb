using Akka.Actor;
using Akka.Serialization;
using Hyperion;
using Serve.Actors.Protocol;

namespace Serve.Actors.Hosting;

/// <summary>
/// The cluster protocol's serializer: Hyperion, bound to <see cref="IServeMessage"/>, with unsafe types
/// disallowed and a type filter that only instantiates this assembly's protocol types, arrays of them and
/// plain values. Anything else in a message from the network is refused before it is constructed.
/// </summary>
public static class ServeSerialization
{
    public const string SerializerName = "serve-hyperion";

    private static readonly string ProtocolNamespace = typeof(IServeMessage).Namespace! + ".";
    private static readonly string ProtocolAssembly = typeof(IServeMessage).Assembly.GetName().Name!;

    private static readonly HashSet<string> PlainTypes = new(StringComparer.Ordinal)
    {
        "System.String", "System.Byte", "System.SByte", "System.Int16", "System.UInt16", "System.Int32",
        "System.UInt32", "System.Int64", "System.UInt64", "System.Single", "System.Double", "System.Boolean",
        "System.DateTime", "System.TimeSpan", "System.Guid",
    };

    public static Akka.Serialization.Serializer Create(ExtendedActorSystem system) =>
        new HyperionSerializer(system, HyperionSerializerSettings.Default
            .WithDisallowUnsafeType(true)
            .WithTypeFilter(new ProtocolTypeFilter()));

    /// <summary>True for the type names Hyperion may load when reading a message.</summary>
    public static bool IsAllowedTypeName(string typeName)
    {
        // Assembly-qualified names: "Full.Name, Assembly[, Version=..., Culture=..., PublicKeyToken=...]";
        // arrays end in "[]". Generic names carry brackets inside the type name and are refused below.
        var parts = typeName.Split(',', StringSplitOptions.TrimEntries);
        var name = parts[0];
        var assembly = parts.Length > 1 ? parts[1] : null;
        while (name.EndsWith("[]", StringComparison.Ordinal))
        {
            name = name[..^2];
        }

        if (name.Contains('[', StringComparison.Ordinal) || name.Contains('`', StringComparison.Ordinal))
        {
            return false; // no generic types: the protocol uses arrays
        }

        if (name.StartsWith(ProtocolNamespace, StringComparison.Ordinal))
        {
            return assembly is null || assembly == ProtocolAssembly;
        }

        return PlainTypes.Contains(name) && (assembly is null || assembly is "System.Private.CoreLib" or "mscorlib");
    }

    private sealed class ProtocolTypeFilter : ITypeFilter
    {
        public bool IsAllowed(string typeName) => IsAllowedTypeName(typeName);
    }
}
