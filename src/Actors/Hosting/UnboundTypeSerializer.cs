using System.Runtime.Serialization;
using Akka.Actor;
using Akka.Serialization;

namespace Serve.Actors.Hosting;

/// <summary>
/// Takes the place of Akka's default JSON serializer, which is bound to <c>System.Object</c> and reads .NET
/// type names from the wire and instantiates them: a node that can reach the cluster port could otherwise
/// make this one construct any type it names. Every message Serve sends has a serializer of its own (its
/// protocol, the journal, Akka's internal ones), so this one refuses in both directions: a message of an
/// unbound type is not sent (the error names its type), and a frame that names the JSON serializer is
/// dropped unread. It keeps the JSON serializer's identifier, so such a frame reaches it and nothing else.
/// </summary>
public sealed class UnboundTypeSerializer : Serializer
{
    /// <summary>Akka's identifier for its JSON serializer.</summary>
    public const int JsonSerializerId = 1;

    public UnboundTypeSerializer(ExtendedActorSystem system)
        : base(system)
    {
    }

    /// <summary>The constructor Akka calls while its default configuration still has settings for the JSON serializer.</summary>
    public UnboundTypeSerializer(ExtendedActorSystem system, Akka.Configuration.Config settings)
        : base(system)
    {
    }

    public override int Identifier => JsonSerializerId;

    public override bool IncludeManifest => false;

    public override byte[] ToBinary(object obj) => throw new SerializationException(
        $"{obj.GetType().FullName} has no serializer bound: messages between nodes must be Serve's protocol (IServeMessage) or Akka's own");

    public override object FromBinary(byte[] bytes, Type type) => throw new SerializationException(
        "Refused a message written with Akka's JSON serializer: it names .NET types to instantiate, and Serve never sends one");
}
