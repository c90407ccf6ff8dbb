using Serve.Actors.Protocol;
using TorchSharp;
using static TorchSharp.torch;

namespace Serve.Node.Torch;

/// <summary>Between the protocol's raw little-endian tensors and libtorch tensors.</summary>
public static class TensorConversion
{
    public static ScalarType? ScalarTypeOf(TensorDataType type) => type switch
    {
        TensorDataType.BOOL => ScalarType.Bool,
        TensorDataType.UINT8 => ScalarType.Byte,
        TensorDataType.INT8 => ScalarType.Int8,
        TensorDataType.INT16 => ScalarType.Int16,
        TensorDataType.INT32 => ScalarType.Int32,
        TensorDataType.INT64 => ScalarType.Int64,
        TensorDataType.FP16 => ScalarType.Float16,
        TensorDataType.BF16 => ScalarType.BFloat16,
        TensorDataType.FP32 => ScalarType.Float32,
        TensorDataType.FP64 => ScalarType.Float64,
        _ => null,
    };

    public static TensorDataType? DataTypeOf(ScalarType type) => type switch
    {
        ScalarType.Bool => TensorDataType.BOOL,
        ScalarType.Byte => TensorDataType.UINT8,
        ScalarType.Int8 => TensorDataType.INT8,
        ScalarType.Int16 => TensorDataType.INT16,
        ScalarType.Int32 => TensorDataType.INT32,
        ScalarType.Int64 => TensorDataType.INT64,
        ScalarType.Float16 => TensorDataType.FP16,
        ScalarType.BFloat16 => TensorDataType.BF16,
        ScalarType.Float32 => TensorDataType.FP32,
        ScalarType.Float64 => TensorDataType.FP64,
        _ => null,
    };

    /// <summary>Makes a libtorch tensor on <paramref name="device"/>; throws <see cref="ModelInputException"/> for datatypes libtorch lacks.</summary>
    public static Tensor ToTorch(NamedTensor tensor, Device device)
    {
        var scalarType = ScalarTypeOf(tensor.DataType)
                         ?? throw new ModelInputException(
                             $"input '{tensor.Name}': datatype {tensor.DataType} is not supported by libtorch models");
        var host = empty(tensor.Shape, scalarType);
        if (tensor.Data.Length > 0)
        {
            host.bytes = tensor.Data;
        }

        return device.type == DeviceType.CPU ? host : host.to(device);
    }

    /// <summary>Copies a libtorch tensor to managed memory (must run on the device's executor thread).</summary>
    public static NamedTensor FromTorch(string name, Tensor tensor)
    {
        var dataType = DataTypeOf(tensor.dtype)
                       ?? throw new ModelOutputException($"output '{name}' has datatype {tensor.dtype}, which the protocol cannot carry");
        var host = tensor.device_type == DeviceType.CPU ? tensor : tensor.cpu();
        var contiguous = host.contiguous();
        return new NamedTensor(name, dataType, contiguous.shape, contiguous.bytes.ToArray());
    }
}
