"""Modbus (TCP, RTU over TCP, RTU serial): config models (``config``), register decoding
(``codec``), read planning (``plan``), the pymodbus client and read requests
(``client``), and the driver (``driver.ModbusDriver``)."""
